"""Scoring of iCartoonFace submissions."""
