"""gunicorn's settings for the admin site. scripts/run.sh adds the address and the
number of worker processes (ADMIN_ADDR, ADMIN_WORKERS):

    python -m gunicorn -c scripts/gunicorn.conf.py --bind ADDR --workers N

Worker class: gthread. Its threads stream a StreamingHttpResponse chunk by chunk (the
CSV and XLSX exports), like the sync worker, but the worker's heartbeat does not wait
for a request: a sync worker busy with one long export for `timeout` seconds would be
killed by the master in the middle of the file. And one export leaves the worker's other
threads free for the pages.
"""

wsgi_app = "backend.wsgi:application"
worker_class = "gthread"
threads = 4
# The client's address is the peer's (REMOTE_ADDR), and HTTPS is what Django's
# SECURE_PROXY_SSL_HEADER says: gunicorn itself trusts no X-Forwarded-* header from
# anyone (its default trusts them from 127.0.0.1).
forwarded_allow_ips = ""
# No control socket: its default path ($XDG_RUNTIME_DIR or ~/.gunicorn) is one for every
# gunicorn of the user, so two projects would take it from each other.
control_socket_disable = True


def post_worker_init(worker) -> None:
    """The start banner, once the first worker has loaded the site: the address listens,
    and the site answers. A worker that cannot load it (backend/wsgi.py refuses a
    missing or weak secret key) fails to boot, and no banner is printed."""
    if worker.age != 1:  # the first worker the master started; not again for the others
        return
    for listener in worker.sockets:
        address = str(listener)  # http://host:port, or unix:/path behind a proxy
        where = f"{address}/admin/" if address.startswith("http") else address
        print(
            f"Admin site: {where}  (create a login: .venv/bin/python manage.py createsuperuser)",
            flush=True,
        )
