"""The Textual front-end: app.py (the app, make_app, run_tui), transcript.py, prompt.py,
panels.py, palette.py, themes.py and editor.py. Nothing here is imported by the engine."""
