"""The questions stage: question files validated, tagged with their role, keyed per question."""
