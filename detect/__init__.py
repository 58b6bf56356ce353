"""Detection: baselines, deviation, classification and the incident state machine, as pure
functions over polars frames. Arrives with the detection issue; nothing here yet."""
