"""A user's script: type-checked by ``tests/test_typing.py`` (``mypy --strict``), never run."""

from __future__ import annotations

from pathlib import Path

import wavenb


def studio() -> wavenb.Studio:
    return wavenb.Studio(image="cat.jpg", prompt="Camera slowly zooms in", aspect_ratio="16:9")


def comparison() -> wavenb.Comparison:
    cmp = wavenb.compare("cat.jpg", {"A": "zoom in", "B": "pan left"}, repeats=2)
    return cmp.wait()


def timeline(videos: list[wavenb.Video]) -> object:
    return wavenb.plot_timeline(videos)


def one_video() -> Path | None:
    video: wavenb.Video = wavenb.generate("cat.jpg", "Camera slowly zooms in", "9:16")
    return video.path


async def with_the_client() -> wavenb.Phase:
    async with wavenb.AsyncClient() as client:
        job = await client.job("cat.jpg", "zoom in")
        stop = job.subscribe(lambda update: print(update.phase.value, update.detail))
        await job.run(timeout=600)
        stop()
        return job.phase


def money() -> float:
    with wavenb.Client(max_spend=5.0) as client:
        left = client.balance() - client.spent()
        for item in wavenb.resume():
            if item.error is not None:
                raise item.error
        return left
