"""Scheduled reports: weekly digest, monthly trends and spikes, quarterly won't-do review, export."""
