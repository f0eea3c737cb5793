"""``wfsearch dashboard STUDY``: optuna-dashboard on the study's storage (safe while a run writes)."""
from __future__ import annotations

import argparse

from wfsearch.errors import UserError

from . import add_study_args, examples

INSTALL_HINT = "optuna-dashboard is not installed; pip install 'wfsearch[dashboard]' (or pip install optuna-dashboard)"


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("dashboard", help="browse a study in optuna-dashboard",
                       description="Serve optuna-dashboard on the study's storage. SQLite studies are in WAL mode, "
                                   "so reading them while `wfsearch run` writes is safe.",
        **examples('wfsearch dashboard studies/predictors --port 8080   # then open http://127.0.0.1:8080'))
    add_study_args(p)
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default: 127.0.0.1, this machine only)")
    p.add_argument("--port", type=int, default=8080, help="port (default: 8080)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    try:
        import optuna_dashboard
    except ImportError:
        raise UserError(f"dashboard: {INSTALL_HINT}") from None
    if not 0 <= args.port <= 65535:
        raise UserError(f"--port: {args.port}: must be between 0 and 65535")
    from pathlib import Path

    from wfsearch.study import open_storage, open_study

    opened = open_study(args.study, storage=args.storage, study_name=args.study_name)  # checks the study is there
    url = args.storage or f"sqlite:///{Path(args.study) / 'optuna.db'}"
    storage = open_storage(url, create=False)  # WAL and a busy timeout: the dashboard never blocks a run
    host = f"[{args.host}]" if ":" in args.host else args.host
    print(f"optuna-dashboard for study {opened.name!r} ({opened.storage_url})", flush=True)
    print(f"open http://{host}:{args.port}/dashboard/ (Ctrl-C to stop)", flush=True)
    try:
        optuna_dashboard.run_server(storage, host=args.host, port=args.port)
    except OSError as e:  # port in use, address not available
        raise UserError(f"dashboard: cannot listen on {args.host}:{args.port}: {e.strerror or e}; "
                        f"pick another --port") from None
    return 0
