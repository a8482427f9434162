"""NPS in Slack: surveys, follow-ups by segment, honest statistics and maturity check-ins."""
