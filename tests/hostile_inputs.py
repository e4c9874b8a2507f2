"""Small hostile inputs, and what each costs photobatch: peak memory and wall time.

``python tests/hostile_inputs.py FOLDER`` writes each input into FOLDER, runs the command that
meets it under ``/usr/bin/time`` with the ``photobatch`` beside this Python, and prints one line
per case: exit code, seconds, peak RSS in MB, and the last line photobatch printed. The target
(issue 25): under 500 MB each, and a refusal in under 2 s. The tests build their inputs here too.
"""

from __future__ import annotations

import json
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np


def alias_bomb() -> str:
    """YAML's billion laughs under a known key: 389 bytes whose lists nest 8 deep, all shared."""
    lines = [
        "sidecars:",
        "  formats:",
        '    - &a ["lol","lol","lol","lol","lol","lol","lol","lol"]',
    ]
    for prev, name in zip("abcdefg", "bcdefgh", strict=True):
        lines.append(f"    - &{name} [" + ",".join([f"*{prev}"] * 9) + "]")
    return "\n".join(lines) + "\n"


def deep_names_zip(path: Path, export: Path | None = None, members: int = 180) -> Path:
    """An export (``export``'s files, if given) plus ``members`` empty files named 2,000 folders
    deep: 1.5 MB of zip, whose every path suffix was once indexed (787 MB)."""
    with zipfile.ZipFile(path, "w") as zf:
        if export is None:
            zf.writestr("your_instagram_activity/media/posts_1.json", "[]")
        else:
            for file in sorted(export.rglob("*")):
                if file.is_file():
                    zf.write(file, file.relative_to(export).as_posix())
        for n in range(members):
            zf.writestr("a/" * 2000 + f"{n}.jpg", b"")
    return path


def zip_bomb(path: Path, members: int = 10, size: int = 94 << 20) -> Path:
    """``members`` photos of ``size`` zeros each (distinct), deflated: 10 x 94 MB in 0.96 MB."""
    posts = [
        {"media": [{"uri": f"media/{i}.jpg", "creation_timestamp": 1 + i, "title": "#a"}]}
        for i in range(members)
    ]
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as zf:
        zf.writestr("your_instagram_activity/media/posts_1.json", json.dumps(posts))
        for i in range(members):
            zf.writestr(f"media/{i}.jpg", b"\xff\xd8\xff\xe0" + bytes([i]) + bytes(size))
    return path


def index_with_a_post_of_100000_hashtags(path: Path) -> Path:
    """An index as an earlier import left it: 11 posts of two tags and one of 100,000, each with
    an encoded photo (random vectors: the tags are the point)."""
    from photobatch.core.records import Post, PostMedia
    from photobatch.library.index import Index

    rng = np.random.default_rng(0)

    def media(i: int) -> list[PostMedia]:
        vector = rng.normal(size=1280).astype("<f2").tobytes()
        return [PostMedia("photo", f"m/{i}.jpg", None, f"{i:064x}", vector)]

    many = [f"t{n}" for n in range(100_000)]
    posts = [
        Post(f"p{i}", f"2020-01-{i + 1:02}", "#dog #beach", ["dog", "beach"], media(i))
        for i in range(11)
    ]
    posts.append(Post("huge", "2020-02-01", " ".join("#" + t for t in many), many, media(99)))
    with Index(path) as index:
        index.write_posts(posts)
    return path


def cases(folder: Path) -> dict[str, list[str]]:
    """Each hostile input written into ``folder``, with the photobatch arguments that meet it."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "bomb.yaml").write_text(alias_bomb())
    (folder / "digits.yaml").write_text(f"batch_size: {'9' * 5000}\n")
    (folder / "nan.yaml").write_text("watch: {settle_seconds: .nan}\n")
    (folder / "nul.yaml").write_text('index: "/tmp/a\\0b.db"\n')
    (folder / "photos").mkdir(exist_ok=True)
    (folder / "notes.json").write_text("{}\n")
    index = ["--index", str(folder / "index.db")]
    return {
        "config: YAML alias bomb": ["--config", str(folder / "bomb.yaml"), *index, "status"],
        "config: 5,000-digit number": ["--config", str(folder / "digits.yaml"), *index, "status"],
        "config: settle_seconds .nan": [
            "--config", str(folder / "nan.yaml"), *index, "watch", str(folder / "photos")
        ],
        "config: NUL in the index path": ["--config", str(folder / "nul.yaml"), "status"],
        "--ray-address of 300 characters": [
            *index, "scan", "--engine", "ray", "--ray-address", "a" * 300 + ":6379",
            str(folder / "photos"),
        ],
        "scan FILE.json": [*index, "scan", str(folder / "notes.json")],
        "zip: names 2,000 folders deep": [
            *index, "import-instagram", str(deep_names_zip(folder / "deep.zip"))
        ],
        "zip: bomb, 10 x 94 MB in 0.96 MB": [
            *index, "import-instagram", str(zip_bomb(folder / "bomb.zip"))
        ],
        "train: a post of 100,000 hashtags": [
            "--index", str(index_with_a_post_of_100000_hashtags(folder / "tags.db")),
            "train", "personalizer",
        ],
        "export -o the index": [
            *index, "export", "--format", "csv", "-o", str(folder / "index.db")
        ],
    }  # fmt: skip


def measure(folder: Path) -> None:
    photobatch = str(Path(sys.executable).with_name("photobatch"))
    commands = cases(folder)
    empty_index = [photobatch, "--index", str(folder / "index.db"), "scan", str(folder / "photos")]
    subprocess.run(empty_index, capture_output=True, check=True)
    for name, args in commands.items():
        run = subprocess.run(
            ["/usr/bin/time", "-f", "%e %M", photobatch, *args], capture_output=True, text=True
        )
        *said, timing = run.stderr.strip().splitlines()
        seconds, kb = timing.split()
        said += run.stdout.splitlines()
        last = [line for line in said if not line.startswith("Command exited")][-1:] or [""]
        print(f"{name:36} exit {run.returncode:3}  {float(seconds):5.2f} s  "
              f"{int(kb) // 1024:4} MB  {last[0][:70]}")  # fmt: skip


if __name__ == "__main__":
    measure(Path(sys.argv[1]))
