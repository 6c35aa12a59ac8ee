"""The outbox worker's one step: deliver due email, retry with back-off, give up loudly.

Kratos' courier pattern (docs/specs/security.md §5): the message row was committed with the code, so
a crash loses nothing; each row is claimed by one conditional update, so no two live workers (or
processes) send the same message at once. Delivery is at least once: a message whose sender
died mid-send (its claim's lease ran out) is sent again, with the same Message-ID, up to
``max_lost_claims`` times; the transport releases a claim at once when it cannot connect.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import timedelta
from itertools import groupby

from nopass.core.clock import Clock
from nopass.core.errors import DeliveryFailed
from nopass.core.models import OutboxEntry
from nopass.core.ports import EmailProviderLookup, EmailTransport, OutboxQueue

RELEASED_LATE = "released unsent: the batch ran past half its claim's lease"


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    base_seconds: float = 1.0
    cap_seconds: float = 30.0
    max_age: timedelta = timedelta(minutes=10)  # codes are long dead by then
    lease_seconds: float = 60.0  # longer than a batch's sends take (each wait is bounded)
    max_lost_claims: int = 3  # claims that ran out before a message fails (a crash loop)

    def delay(self, attempts: int) -> timedelta:
        return timedelta(
            seconds=min(self.base_seconds * 2 ** max(attempts - 1, 0), self.cap_seconds)
        )


async def deliver_due(
    queue: OutboxQueue,
    transport: EmailTransport,
    providers: EmailProviderLookup,
    clock: Clock,
    policy: RetryPolicy,
    *,
    batch: int = 20,
    abandoned: bool = True,
    claimed: Sequence[OutboxEntry] | None = None,
    claim_next: bool = True,
) -> list[OutboxEntry]:
    """Deliver a batch: ``claimed`` (handed on by the previous call) or what is due now.
    The batch is settled and, in the same transaction, the next one claimed (unless
    ``claim_next`` is false: the worker is stopping) and returned, for the worker to deliver
    at once; so a busy outbox commits once per batch, not twice. ``abandoned`` also puts
    messages whose sender died back to pending (the worker asks now and then). Consecutive
    messages of one tenant go out together (``send_many``: one SMTP session, pipelined).
    Past half the lease no further tenant's messages are started: they are released, for a
    sender whose claim is fresh (no message goes out on a claim that may be taken back)."""
    now = clock.now()
    late = now + timedelta(seconds=policy.lease_seconds / 2)
    if abandoned:
        await queue.release_abandoned(
            now, max_lost_claims=policy.max_lost_claims, oldest=now - policy.max_age
        )
    if claimed is None:
        claimed = await queue.claim_due(now, lease_seconds=policy.lease_seconds, limit=batch)
    if not claimed:
        return []
    sent: list[OutboxEntry] = []
    try:
        for _, group in groupby(claimed, key=lambda entry: entry.tenant_id):
            if clock.now() >= late:
                for entry in group:
                    await queue.retry_later(entry, clock.now(), RELEASED_LATE)
                continue
            await _deliver(list(group), queue, transport, providers, clock, policy, sent)
    except BaseException:
        await queue.mark_sent(sent, clock.now())
        raise
    if not claim_next:
        await queue.mark_sent(sent, clock.now())
        return []
    return await queue.settle_and_claim(
        sent, clock.now(), lease_seconds=policy.lease_seconds, limit=batch
    )


async def _deliver(
    entries: list[OutboxEntry],
    queue: OutboxQueue,
    transport: EmailTransport,
    providers: EmailProviderLookup,
    clock: Clock,
    policy: RetryPolicy,
    sent: list[OutboxEntry],
) -> None:
    """Send claimed messages of one tenant together; then, each as its own, settle it with
    the batch (``sent``), or fail it, or schedule its retry."""
    provider = await providers(entries[0].tenant_id)
    if provider is not None and (not provider.enabled or provider.name != "smtp"):
        provider = None
    ready = [entry for entry in entries if entry.message is not None]
    messages = [entry.message for entry in ready if entry.message is not None]
    failures: Iterator[DeliveryFailed | None] = iter(())  # in the order of ``messages``
    if provider is not None and messages:
        ids = [entry.id for entry in ready]
        failures = iter(await transport.send_many(provider, messages, message_ids=ids))
    for entry in entries:
        if entry.message is None:
            await queue.fail(entry, "message body unavailable", clock.now())
        elif provider is None:
            await queue.fail(entry, "no enabled email provider is configured", clock.now())
        elif (failure := next(failures)) is None:
            sent.append(entry)
        else:
            now = clock.now()
            too_old = now - entry.created_at >= policy.max_age
            if failure.retryable and not too_old:
                await queue.retry_later(entry, now + policy.delay(entry.attempts), str(failure))
            else:
                await queue.fail(entry, str(failure), now)
