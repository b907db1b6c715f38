"""Real-browser tests: the course's JupyterLab driven by headless Chromium (Playwright)."""
