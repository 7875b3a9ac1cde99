"""The study's storage (SQLite in the tune folder, a SQLAlchemy URL, or a journal file), and the trials of
workers that died: failed and queued again with the same parameters."""

from __future__ import annotations

import logging
import os
import random
import socket
import sqlite3
import time
import warnings
from functools import partial
from pathlib import Path

import optuna
from omegaconf import DictConfig
from optuna.storages import JournalStorage, RDBStorage
from optuna.storages.journal import JournalFileBackend
from optuna.trial import TrialState
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, IntegrityError

from rlopt.errors import UserError

log = logging.getLogger(__name__)

MAX_ATTEMPTS = 3  # a trial whose worker dies is run again, up to this many times in all
HOST = socket.gethostname()


def open_storage(cfg: DictConfig, folder: Path):
    """The study's storage: SQLite in the tune folder, a SQLAlchemy URL, or a journal file (a path)."""
    spec = cfg.tune.storage
    try:
        if spec is not None and "://" not in str(spec):
            path = Path(str(spec)).expanduser()
            if not path.parent.is_dir():
                raise UserError(f"tune.storage={spec}: the folder {path.parent} does not exist")
            return JournalStorage(JournalFileBackend(str(path)))
        url = spec or f"sqlite:///{(folder / 'study.db').absolute()}"
        engine = {"creator": partial(_local_sqlite, folder / "study.db")} if spec is None else None
        for attempt in range(5):
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                    return RDBStorage(url, engine_kwargs=engine, heartbeat_interval=int(cfg.tune.heartbeat.interval),
                                      grace_period=int(cfg.tune.heartbeat.grace), heartbeat_stale_trial_callback=repeat_trial)
            except IntegrityError:  # workers starting together both created the schema: the other one won
                if attempt == 4:
                    raise
                time.sleep(0.5 + random.random())
    except UserError:
        raise
    except Exception as err:  # SQLAlchemy, a missing database driver, the file system: each says why
        reason = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        shown = spec if spec is None or "://" not in str(spec) else _hide_password(str(spec))
        raise UserError(f"tune.storage={shown or url}: cannot open it ({type(err).__name__}: {reason})") from None


def _local_sqlite(path: Path) -> sqlite3.Connection:
    """The tune folder's SQLite in WAL mode: a trial reports every decision step, and a commit without an
    fsync each is ~1 ms instead of ~20 (WAL wants a local disk, as SQLite does anyway)."""
    # workers wait for each other's writes; the heartbeat thread shares the pool (as SQLAlchemy's own SQLite setup allows)
    connection = sqlite3.connect(path, timeout=60, check_same_thread=False)
    connection.execute("PRAGMA journal_mode=WAL")
    connection.execute("PRAGMA synchronous=NORMAL")
    return connection


def _hide_password(url: str) -> str:
    try:
        return make_url(url).render_as_string(hide_password=True)
    except ArgumentError:  # not even a URL: say so as given
        return url


def repeat_trial(study: optuna.Study, trial) -> None:
    """Queue a trial whose worker died again with the same parameters (up to MAX_ATTEMPTS runs in all)."""
    attempt = int(trial.user_attrs.get("attempt", 1))
    if attempt >= MAX_ATTEMPTS:
        log.warning("trial %d failed %d times; not repeating it", trial.number, attempt)
        return
    study.enqueue_trial(dict(trial.params), user_attrs={"retry_of": trial.user_attrs.get("retry_of", trial.number),
                                                       "attempt": attempt + 1})


def _alive(pid) -> bool:
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except (PermissionError, TypeError, ValueError):
        return True  # someone else's process, or no pid recorded: leave it to the heartbeat
    return True


def fail_dead_trials(study: optuna.Study) -> None:
    """Fail (and queue again) the running trials of workers on this host that no longer exist."""
    for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        if trial.user_attrs.get("host") == HOST and not _alive(trial.user_attrs.get("pid")):
            try:
                study.tell(trial.number, state=TrialState.FAIL)
            except (ValueError, RuntimeError):  # another worker got there first
                continue
            log.warning("trial %d: its worker (pid %s) is gone; marked failed and queued again", trial.number,
                        trial.user_attrs.get("pid"))
            repeat_trial(study, trial)


