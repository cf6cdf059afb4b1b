"""Plots (matplotlib, Agg backend) and HTML pages."""
