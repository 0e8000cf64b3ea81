# METADATA
# title: Residency
# description: >-
#   A workload runs only in the locations listed under workloads.<name>.allowed in
#   cloudbalance.yaml. Workloads without a list are not restricted. Checked for every workload
#   the change touches, whether the change comes from a plan or from a person.
package cloudbalance.starter.residency

import rego.v1

deny contains msg if {
	some name, workload in input.workloads
	count(workload.allowed) > 0
	outside := [location |
		replicas := workload.placements[location]
		replicas > 0
		not location in workload.allowed
	]
	count(outside) > 0

	# Built with concat, not sprintf: rego-cpp 1.5 quotes a %v argument that contains ", ".
	msg := concat("", [
		"residency: workload ", name, " may only run in ", concat(", ", workload.allowed),
		", but the change leaves replicas in ", concat(", ", outside),
	])
}
