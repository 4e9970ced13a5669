"""sipflow's HTTP API (FastAPI): start, list, inspect, steer and cancel test sessions."""
