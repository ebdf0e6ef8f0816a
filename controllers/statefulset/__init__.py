"""The StatefulSet controller: pods with stable ordinal names and claims, started, stopped and updated in order."""
