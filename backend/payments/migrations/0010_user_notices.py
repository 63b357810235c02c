# Notices to users about changes of their balance (issue 16, part 3).

import django.db.models.deletion
import django.utils.timezone
from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('payments', '0009_mysql_partial_uniques'),
    ]

    operations = [
        migrations.CreateModel(
            name='UserNotice',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('show_reason', models.BooleanField(default=False, verbose_name='reason shown')),
                ('status', models.CharField(choices=[('pending', 'queued'), ('sending', 'being sent'), ('sent', 'sent'), ('failed', 'not delivered'), ('bot_blocked', 'the user has blocked the bot'), ('skipped', 'not sent: the user is blocked'), ('unknown', 'unknown: the bot stopped while sending')], default='pending', max_length=16, verbose_name='status')),
                ('created_at', models.DateTimeField(default=django.utils.timezone.now, verbose_name='created')),
                ('sent_at', models.DateTimeField(blank=True, null=True, verbose_name='sent')),
                ('error', models.TextField(blank=True, verbose_name='error')),
                ('entry', models.OneToOneField(on_delete=django.db.models.deletion.PROTECT, related_name='notice', to='payments.ledgerentry', verbose_name='change')),
            ],
            options={
                'verbose_name': 'notice to a user',
                'verbose_name_plural': 'notices to users',
                'indexes': [models.Index(fields=['status', 'id'], name='notice_status_idx')],
            },
        ),
    ]
