"""Offline relevance evaluation for Zhida: data, runs, metrics, tuning, reports."""
