"""The catalog: engines, version detection, the read path and the model it builds."""
