"""The code that runs inside the final stage's sandbox (harness.py): it imports torch and the team's model, so the
platform (arena) never imports it; arena's sandbox runner starts it as a separate program in bubblewrap."""
