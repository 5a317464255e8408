"""Take docs/web.png: the web page with Set5's butterfly upscaled by 3 (bicubic against espcn-x3).

    python docs/screenshot.py [--hr ../shared/datasets/Set5/butterfly.png]

It needs Playwright and Debian's Chromium (`apt-get install chromium`), as the browser tests do.
"""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path

from playwright.sync_api import expect, sync_playwright

from srkit.web import background

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--image", default=ROOT / "samples" / "butterfly_lr.png", type=Path)
    parser.add_argument("--hr", default=ROOT.parent / "shared" / "datasets" / "Set5" / "butterfly.png", type=Path)
    parser.add_argument("-o", "--output", default=ROOT / "docs" / "web.png", type=Path)
    args = parser.parse_args()
    with background() as url, sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=shutil.which("chromium"))
        page = browser.new_page(viewport={"width": 1150, "height": 900})
        page.goto(url)
        page.set_input_files("#image", args.image)
        if args.hr.is_file():
            page.set_input_files("#hr", args.hr)
        page.check('input[name="scale"][value="3"]')
        page.click("#run")
        expect(page.locator('#rows tr[data-name="espcn-x3"]')).to_be_visible(timeout=60_000)
        page.fill("#split", "45")
        box = page.locator("#before").bounding_box()
        page.mouse.click(box["x"] + box["width"] * 0.33, box["y"] + box["height"] * 0.42)  # a wing's edge
        page.screenshot(path=args.output, full_page=True)
        browser.close()
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
