# METADATA
# title: High availability
# description: >-
#   A workload whose workloads.<name>.min_locations is above 1 keeps replicas in at least that
#   many locations after the change.
package cloudbalance.starter.min_locations

import rego.v1

deny contains msg if {
	some name, workload in input.workloads
	workload.min_locations > 1
	used := [location | replicas := workload.placements[location]; replicas > 0]
	count(used) < workload.min_locations
	msg := concat("", [
		sprintf("min_locations: workload %v must run in at least %v locations, ", [name, workload.min_locations]),
		sprintf("the change leaves %v", [count(used)]), " (", concat(", ", used), ")",
	])
}
