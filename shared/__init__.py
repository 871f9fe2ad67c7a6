"""Domain package of the CSP fraud responder: everything testable without the Functions host."""
