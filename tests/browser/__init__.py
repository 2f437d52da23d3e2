"""The dashboard in a real browser: headless Chromium (Debian's package) driven by Selenium."""
