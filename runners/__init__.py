"""The sipflow runner agent: wraps one SIPp process and streams its statistics over MQTT."""
