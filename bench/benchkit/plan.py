"""Sizes of everything the benchmark generates and sends, per ``--scale``, and project names."""

from __future__ import annotations

from dataclasses import dataclass

MIB = 1 << 20

# Platform tags of the big project: a handful of wheels per version, as real projects publish.
BIG_TAGS = (
    "py3-none-any",
    "cp312-cp312-manylinux_2_17_x86_64.manylinux2014_x86_64",
    "cp312-cp312-musllinux_1_2_x86_64",
    "cp312-cp312-macosx_11_0_arm64",
    "cp312-cp312-win_amd64",
)

BIG = "bigproj"
SMALL = "smallproj"
BLOB_1MB = "blob-1mb"
BLOB_100MB = "blob-100mb"
MANY_VERSIONS = "manyversions"


@dataclass(frozen=True)
class Scale:
    name: str
    big_files: int          # files on the big project page
    small_files: int        # files on the small project page
    chain: int              # projects of the install chain
    file_small: int         # bytes of the "1 MB" file
    file_large: int         # bytes of the "100 MB" file
    duration: int           # seconds of each load run
    page_clients: int       # concurrent clients on pages
    file_clients: int       # concurrent clients on files
    cold_samples: int       # cold fetches per system and run
    herd_clients: int       # clients on one cold large file
    private_projects: int   # private projects in the scale data dir
    many_versions: int      # versions of the one large private project
    growth_cached: tuple[int, ...] = (1000, 10_000, 100_000)  # cached upstream projects served (memory)
    growth_private: tuple[int, ...] = (1000, 10_000)          # private projects served (memory)

    def chain_names(self) -> list[str]:
        return [f"chain-{i:02d}" for i in range(self.chain)]


SCALES = {
    "full": Scale("full", big_files=2000, small_files=5, chain=30, file_small=MIB, file_large=100 * MIB,
                  duration=5, page_clients=64, file_clients=16, cold_samples=7, herd_clients=50,
                  private_projects=10_000, many_versions=3000),
    "tiny": Scale("tiny", big_files=40, small_files=5, chain=4, file_small=64 * 1024, file_large=2 * MIB,
                  duration=1, page_clients=8, file_clients=4, cold_samples=2, herd_clients=6,
                  private_projects=200, many_versions=60, growth_cached=(50, 200), growth_private=(50, 200)),
}


def cold_name(system: str, run: int, sample: int) -> str:
    return f"cold-{system}-r{run}-s{sample}"


def herd_name(system: str, run: int) -> str:
    return f"herd-{system}-r{run}"
