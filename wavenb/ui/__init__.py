"""Shared pieces of the notebook views: task spawning, formatting, static assets."""
