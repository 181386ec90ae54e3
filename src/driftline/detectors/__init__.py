"""Pure statistics: reference profiles, mergeable summaries, drift tests, decisions.

No Kafka, no clock, no I/O: everything here is tested in milliseconds and reused unchanged by
the offline ``replay`` command (DESIGN §1).
"""
