"""The outbox worker's one step: deliver due email, retry with back-off, give up loudly.

Kratos' courier pattern (security.md §5): the message row was committed with the code, so a
crash loses nothing; each row is claimed by one conditional update, so no two workers (or
processes) send the same message; a message whose sender died mid-send is not sent again.
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


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    base_seconds: float = 1.0
    cap_seconds: float = 30.0
    max_age: timedelta = timedelta(minutes=10)  # codes are long dead by then
    lease_seconds: float = 60.0

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
    at once; so a busy outbox commits once per batch, not twice. ``abandoned`` also fails
    messages whose sender died (the worker asks now and then). Consecutive messages of one
    tenant go out together (``send_many``: one SMTP session, pipelined)."""
    now = clock.now()
    if abandoned:
        await queue.fail_abandoned(now)
    if claimed is None:
        claimed = await queue.claim_due(now, lease_seconds=policy.lease_seconds, limit=batch)
    if not claimed:
        return []
    sent: list[OutboxEntry] = []
    try:
        for _, group in groupby(claimed, key=lambda entry: entry.tenant_id):
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
    messages = [entry.message for entry in entries if entry.message is not None]
    failures: Iterator[DeliveryFailed | None] = iter(())  # in the order of ``messages``
    if provider is not None and messages:
        failures = iter(await transport.send_many(provider, messages))
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
