"""``manage.py bench_prepare FILE``: one user per e-mail in FILE (one a line), each with a
verified primary allauth EmailAddress. Users that already exist are left as they are."""

from pathlib import Path
from typing import Any

from allauth.account.models import EmailAddress
from django.contrib.auth import get_user_model
from django.contrib.auth.hashers import UNUSABLE_PASSWORD_PREFIX
from django.core.management.base import BaseCommand, CommandParser
from django.db import transaction

BATCH = 2000


class Command(BaseCommand):
    help = "Bulk-create benchmark users with verified primary e-mail addresses."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("emails_file", type=Path)

    def handle(self, *args: Any, **options: Any) -> None:
        path: Path = options["emails_file"]
        # allauth stores and looks up e-mail addresses lower-cased.
        emails = list(
            dict.fromkeys(
                line.strip().lower() for line in path.read_text().splitlines() if line.strip()
            )
        )
        User = get_user_model()
        with transaction.atomic():
            User.objects.bulk_create(
                (
                    # No password: login by code only ("!" marks it unusable).
                    User(username=email[:150], email=email, password=UNUSABLE_PASSWORD_PREFIX)
                    for email in emails
                ),
                batch_size=BATCH,
                ignore_conflicts=True,
            )
            # bulk_create returns no primary keys with ignore_conflicts: look them up by the
            # (unique, indexed) username.
            ids: dict[str, int] = {}
            for start in range(0, len(emails), BATCH):
                names = [email[:150] for email in emails[start : start + BATCH]]
                ids.update(User.objects.filter(username__in=names).values_list("username", "pk"))
            EmailAddress.objects.bulk_create(
                (
                    EmailAddress(user_id=ids[email[:150]], email=email, verified=True, primary=True)
                    for email in emails
                ),
                batch_size=BATCH,
                ignore_conflicts=True,
            )
        if options["verbosity"] >= 1:
            self.stdout.write(f"bench_prepare: {len(emails)} users")
