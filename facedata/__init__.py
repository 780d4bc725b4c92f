"""The embedded synthetic cartoon-face benchmark (a generator in the exact iCartoonFace layout) and the readers of
the real dataset. See facedata/README.md for the layout and the API."""
