"""Where results leave driftline: the InfluxDB writer and line-protocol files."""
