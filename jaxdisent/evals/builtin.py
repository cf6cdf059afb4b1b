"""Imports every module that registers evaluators (one line per module)."""

# pylint: disable=unused-import
