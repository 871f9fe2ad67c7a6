"""Local development host: runs the app's FunctionApp without Azure Functions Core Tools.

A development tool, not a production runtime: see docs/local-stack.md.
"""
