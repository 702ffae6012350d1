"""Build the lab's emulated ``mailcow-dockerized`` git repository (a bare repo on this machine).

Effectful: writes files and runs git. Each version in ``render_tree.VERSIONS`` becomes one
commit on ``master`` with its tag; the tree holds the scripts from ``tree/``, a
version-specific ``docker-compose.yml`` and ``_modules/``, and a copy of the emulator runtime
under ``data/Dockerfiles/emulator/`` with a ``VERSION`` file, so checking out another tag
changes what runs on the host.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

from mailfleet.errors import MailfleetError
from mailfleet.lab.emulator.render_tree import VERSIONS, EmulatedVersion, render_compose, render_modules_core

HERE = Path(__file__).resolve().parent
TREE = HERE / "tree"
RUNTIME = HERE / "runtime" / "mailcow_emulator"


class EmulatorBuildError(MailfleetError):
    """The emulated repository could not be built."""


def _git(cwd: Path, *args: str, env: dict[str, str] | None = None) -> str:
    result = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, env=env)
    if result.returncode != 0:
        raise EmulatorBuildError(
            f"git {' '.join(args)} failed in {cwd}: {result.stderr.strip()}; the lab's Mailcow emulator "
            "repository was not built. Check that git works, then run lab.up again.")
    return result.stdout


def _write_version(work: Path, version: EmulatedVersion) -> None:
    for item in work.iterdir():
        if item.name != ".git":
            shutil.rmtree(item) if item.is_dir() and not item.is_symlink() else item.unlink()
    for source in sorted(TREE.rglob("*")):
        if source.is_dir() or "__pycache__" in source.parts:
            continue
        relative = source.relative_to(TREE)
        target = work / (".gitignore" if relative.as_posix() == "dot-gitignore" else relative)
        target.parent.mkdir(parents=True, exist_ok=True)
        text = source.read_text()
        if relative.as_posix() == "_modules/scripts/core.sh":
            text = render_modules_core(text, version)
        target.write_text(text)
        executable = relative.suffix == ".sh" or bool(source.stat().st_mode & 0o100)
        target.chmod(0o755 if executable else 0o644)  # an installed wheel may not keep modes
    (work / "docker-compose.yml").write_text(render_compose(version))
    (work / ".env").symlink_to("mailcow.conf")
    runtime = work / "data/Dockerfiles/emulator"
    (runtime / "mailcow_emulator").mkdir(parents=True)
    for module in sorted(RUNTIME.glob("*.py")):
        shutil.copyfile(module, runtime / "mailcow_emulator" / module.name)
    (runtime / "VERSION").write_text(version.tag + "\n")
    for directory in ("data/conf/rspamd/override.d", "data/assets/ssl", "data/web/inc"):
        (work / directory).mkdir(parents=True, exist_ok=True)
        (work / directory / ".gitkeep").write_text("")


FINGERPRINT_FILE = "mailcow-emulator-source.sha256"


def source_fingerprint(versions: tuple[EmulatedVersion, ...]) -> str:
    """A digest of everything a build puts into the repository; a new one means rebuild."""
    digest = hashlib.sha256(repr(versions).encode())
    for source in sorted([*TREE.rglob("*"), *RUNTIME.glob("*.py"), HERE / "render_tree.py"]):
        if source.is_file() and "__pycache__" not in source.parts:
            digest.update(source.relative_to(HERE).as_posix().encode() + b"\0" + source.read_bytes())
    return digest.hexdigest()


def existing_tags(dest: Path) -> list[str]:
    if not (dest / "HEAD").exists():
        return []
    result = subprocess.run(["git", "--git-dir", str(dest), "tag", "--sort=creatordate"], capture_output=True, text=True)
    return result.stdout.split() if result.returncode == 0 else []


def build_mailcow_repository(dest: Path, versions: tuple[EmulatedVersion, ...] = VERSIONS) -> list[str]:
    """Create the bare repository at ``dest`` (idempotent) and return its tags, oldest first.

    An existing repository built from the same sources (same fingerprint, every tag) is kept
    as is; a partial or outdated one is replaced, so a changed emulator never runs stale. The build happens in a temporary directory and is moved into place
    at the end, so an interrupted build leaves nothing half-done at ``dest``.
    """
    wanted = [v.tag for v in versions]
    fingerprint = source_fingerprint(versions)
    stamp = dest / FINGERPRINT_FILE
    if existing_tags(dest) == wanted and stamp.exists() and stamp.read_text().strip() == fingerprint:
        return wanted
    dest.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="mailcow-emulator-build-", dir=dest.parent) as tmp:
        work = Path(tmp) / "work"
        work.mkdir()
        base_env = {k: v for k, v in os.environ.items() if not k.startswith("GIT_")}
        base_env.update(GIT_CONFIG_NOSYSTEM="1", HOME=tmp, GIT_AUTHOR_NAME="mailcow emulator",
                        GIT_AUTHOR_EMAIL="emulator@mailfleet.invalid", GIT_COMMITTER_NAME="mailcow emulator",
                        GIT_COMMITTER_EMAIL="emulator@mailfleet.invalid")
        _git(work, "init", "-q", "-b", "master", env=base_env)
        for version in versions:
            _write_version(work, version)
            env = dict(base_env, GIT_AUTHOR_DATE=version.date, GIT_COMMITTER_DATE=version.date)
            _git(work, "add", "-A", env=env)
            _git(work, "commit", "-q", "-m", f"mailcow-dockerized {version.tag} (mailcow emulator)", env=env)
            _git(work, "tag", "-a", version.tag, "-m", f"Release {version.tag} (mailcow emulator)", env=env)
        bare = Path(tmp) / "bare.git"
        _git(Path(tmp), "clone", "-q", "--bare", str(work), str(bare), env=base_env)
        (bare / FINGERPRINT_FILE).write_text(fingerprint + "\n")
        if dest.exists():
            shutil.rmtree(dest)
        os.replace(bare, dest)
    return wanted
