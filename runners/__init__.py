"""Runner agent (wraps SIPp) and the backends that start it."""
