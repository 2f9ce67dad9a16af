"""Hand-offs between tasks through storage, not local paths: with
``PROFILECAST_HANDOFF_URL`` (``s3://bucket/prefix``) a render task puts its batch in the
object store and its XCom names it by URL; the export task, on whichever worker, fetches it
by that URL. Without it, the rendered folder under ``PROFILECAST_HOME`` is shared (one
machine)."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def hand_off(item: dict[str, Any], rendered_dir: Path) -> dict[str, Any]:
    """With PROFILECAST_HANDOFF_URL, put the rendered file in the object store and name it
    by URL (the XCom stays a small manifest; the export may run on another worker)."""
    from profilecast.config import handoff_url
    from profilecast.storage import ObjectStore

    url = handoff_url()
    if url is None:
        return item
    local = Path(item["path"])
    rel = str(local.relative_to(rendered_dir))
    ObjectStore(url).write(f"rendered/{rel}", local.read_bytes(), "application/gzip",
                           overwrite=True)  # fmt: skip
    local.unlink()
    return {**item, "path": f"{url}/rendered/{rel}"}


def fetch(path: str, folder: Path) -> Path:
    """A handed-off file as a local path (downloaded when it lives in an object store)."""
    if not path.startswith("s3://"):
        return Path(path)
    from profilecast.storage import ObjectStore

    base, _, rel = path.partition("/rendered/")
    data = ObjectStore(base).read(f"rendered/{rel}")
    if data is None:
        raise FileNotFoundError(f"the rendered batch {path} is not in the object store")
    local = folder / rel
    local.parent.mkdir(parents=True, exist_ok=True)
    local.write_bytes(data)
    return local
