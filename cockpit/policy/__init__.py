"""Effective state: pure functions over a state graph, shared by plan, explain, API and proxy."""
