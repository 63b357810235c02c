from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone

from backend.broadcasts import selectors
from backend.broadcasts.models import Broadcast, Delivery


class Command(BaseCommand):
    help = "A broadcast's progress: its status and what became of its messages."

    def add_arguments(self, parser) -> None:
        parser.add_argument("id", type=int)

    def handle(self, *args, **options) -> None:
        try:
            progress = selectors.broadcast_progress(broadcast_id=options["id"])
        except Broadcast.DoesNotExist:
            raise CommandError(f"no broadcast {options['id']}") from None
        broadcast, counts = progress.broadcast, progress.counts
        lines = [
            f"broadcast {broadcast.pk}: {broadcast.status}, "
            f"{progress.handled} of {broadcast.total} handled"
        ]
        lines += [f"  {status.value}: {counts[status]}" for status in Delivery.Status]
        if progress.rate is not None and progress.eta is not None:
            eta = timezone.localtime(progress.eta)
            lines.append(f"  rate: {progress.rate:.1f}/s, ends about {eta:%Y-%m-%d %H:%M:%S}")
        self.stdout.write("\n".join(lines))
