# METADATA
# title: Residency
# description: >-
#   A workload runs only in the locations listed under workloads.<name>.allowed in
#   cloudbalance.yaml. Workloads without a list are not restricted. Checked for every workload
#   the change touches, whether the change comes from a plan or from a person.
package cloudbalance.starter.residency

import rego.v1

deny contains msg if {
	some workload, _ in input.changes_by_workload
	allowed := object.get(input.settings.workloads, [workload, "allowed"], [])
	count(allowed) > 0
	outside := [p.location |
		some p in input.placements[workload]
		p.replicas > 0
		not p.location in allowed
	]
	count(outside) > 0
	# Built with concat, not sprintf: rego-cpp 1.5 quotes a %v argument that contains ", ".
	msg := concat("", [
		"residency: workload ", workload, " may only run in ", concat(", ", allowed),
		", but the change leaves replicas in ", concat(", ", outside),
	])
}
