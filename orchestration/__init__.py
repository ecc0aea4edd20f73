"""Stepwise's engine: resumable graph workflows in Pregel supersteps. Imports no Django."""
