# METADATA
# title: Maximum change per plan
# description: >-
#   A change committed without review (mode commit) relocates at most guardrails.max_share_moved
#   of the touched workloads' replicas (0..1; scaling in place relocates nothing) and edits at
#   most guardrails.max_moves placement values. Above them, a pull request (a person's review)
#   is the way in: auto mode opens one. Unset limits are not checked.
package cloudbalance.starter.max_share_moved

import rego.v1

guardrails := input.settings.guardrails

deny contains msg if {
	input.mode == "commit"
	limit := guardrails.max_share_moved
	limit != null
	input.summary.share_moved > limit
	msg := sprintf(
		"max_share_moved: the change moves %v of %v replicas (%v%%), more than the %v%% allowed",
		[
			input.summary.replicas_moved, input.summary.replicas_before,
			round(input.summary.share_moved * 1000) / 10, round(limit * 1000) / 10,
		],
	)
}

deny contains msg if {
	input.mode == "commit"
	limit := guardrails.max_moves
	limit != null
	input.summary.moves > limit
	msg := sprintf(
		"max_share_moved: the change edits %v placements, more than the %v allowed (guardrails.max_moves)",
		[input.summary.moves, limit],
	)
}
