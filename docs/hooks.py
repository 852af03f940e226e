"""MkDocs hooks: the figures of `benchmarks/results/` on the site.

`docs/benchmarks.md` links its figures where they live in the repository
(`../benchmarks/results/NAME.png`); the site copies them to `results/` and
rewrites the links, so that the page reads right on both.
"""

import glob
import os

from mkdocs.structure.files import File

_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def on_files(files, config):
    for path in sorted(glob.glob(os.path.join(_ROOT, "benchmarks", "results",
                                              "*.png"))):
        files.append(File(
            os.path.join("results", os.path.basename(path)),
            src_dir=os.path.join(_ROOT, "benchmarks"),
            dest_dir=config["site_dir"],
            use_directory_urls=config["use_directory_urls"]))
    return files


def on_page_markdown(markdown, page, config, files):
    depth = page.file.src_uri.count("/")
    up = "../" * depth
    return (markdown.replace("../benchmarks/results/", up + "results/")
            .replace("../docs/", up))
