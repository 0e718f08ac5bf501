"""A certificate as PDF: the HTML printed by headless Chromium, so the PDF is the page as a
browser lays it out (A4 from the page's @page rule, the embedded CJK font, the QR code).

Chromium is Debian's `chromium` on PATH, or the binary EVLEDGER_CHROMIUM names.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path

BROWSERS = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable", "chrome")


class PdfUnavailable(OSError):
    """No browser to print with, or it failed: the message says which and how to fix it."""


def find_chromium() -> str | None:
    named = os.environ.get("EVLEDGER_CHROMIUM")
    if named:
        return shutil.which(named) or (named if os.access(named, os.X_OK) else None)
    return next((found for found in map(shutil.which, BROWSERS) if found), None)


def html_to_pdf(html: str, timeout: float = 120) -> bytes:
    browser = find_chromium()
    if browser is None:
        raise PdfUnavailable("a PDF certificate is printed by headless Chromium, and none was found: install "
                             "Debian's chromium (apt-get install chromium) or set EVLEDGER_CHROMIUM")
    with tempfile.TemporaryDirectory(prefix="evledger-pdf-") as tmp:
        page, pdf = Path(tmp) / "certificate.html", Path(tmp) / "certificate.pdf"
        page.write_text(html, encoding="utf-8")
        # Chromium refuses to run as root with its sandbox on (containers, CI).
        sandbox = ["--no-sandbox"] if hasattr(os, "geteuid") and os.geteuid() == 0 else []
        args = [browser, "--headless", *sandbox, "--disable-gpu", "--no-first-run", "--mute-audio",
                f"--user-data-dir={Path(tmp) / 'profile'}", "--no-pdf-header-footer", f"--print-to-pdf={pdf}",
                page.as_uri()]
        try:
            done = subprocess.run(args, capture_output=True, text=True, timeout=timeout)
        except subprocess.TimeoutExpired:
            raise PdfUnavailable(f"{browser} did not print the certificate within {timeout:.0f} s") from None
        if not pdf.is_file() or pdf.stat().st_size == 0:
            raise PdfUnavailable(f"{browser} printed no PDF (exit {done.returncode}): {done.stderr.strip()[-500:]}")
        return pdf.read_bytes()
