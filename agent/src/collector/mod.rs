//! The sensor collector: MQTT -> durable queue -> Graphite (issue 6 fills this in).
