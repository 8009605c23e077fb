"""Bounds kept at more than one floor: the settings check their knobs against them, the
inference log enforces them."""

# A prediction id ends in its instance's position in the request, as this many hex digits
# (vigil.log.prediction_ids), so a request holds at most 16**OFFSET_DIGITS instances.
OFFSET_DIGITS = 4
MAX_REQUEST_ROWS = 16**OFFSET_DIGITS  # positions 0000..ffff
