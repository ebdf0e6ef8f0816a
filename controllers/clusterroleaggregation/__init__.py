"""The clusterrole-aggregation controller: an aggregated ClusterRole's rules are those of the roles it selects."""
