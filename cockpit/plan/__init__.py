"""Desired vs actual → a `Plan`; renderers turn a plan into text, JSON or Markdown."""
