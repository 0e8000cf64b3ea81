# METADATA
# title: High availability
# description: >-
#   A workload whose workloads.<name>.min_locations is above 1 keeps replicas in at least that
#   many locations after the change.
package cloudbalance.starter.min_locations

import rego.v1

deny contains msg if {
	some workload, _ in input.changes_by_workload
	minimum := object.get(input.settings.workloads, [workload, "min_locations"], 1)
	minimum > 1
	used := [p.location | some p in input.placements[workload]; p.replicas > 0]
	count(used) < minimum
	msg := concat("", [
		sprintf("min_locations: workload %v must run in at least %v locations, ", [workload, minimum]),
		sprintf("the change leaves %v", [count(used)]), " (", concat(", ", used), ")",
	])
}
