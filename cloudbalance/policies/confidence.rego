# METADATA
# title: Confidence for direct commits
# description: >-
#   A plan is committed directly (mode commit) only when its confidence reaches
#   guardrails.min_confidence_commit; below it the change must go through a pull request.
#   Stack-config changes made by people are not concerned (they have no confidence).
package cloudbalance.starter.confidence

import rego.v1

minimum := input.settings.guardrails.min_confidence_commit

deny contains msg if {
	input.mode == "commit"
	input.plan.confidence < minimum
	msg := sprintf(
		"confidence: plan %v has confidence %v, below the %v required to commit directly; open a pull request instead",
		[input.plan.plan_id, input.plan.confidence, minimum],
	)
}

warn contains msg if {
	input.mode != "commit"
	input.summary.moves > 0
	input.plan.confidence < minimum
	msg := sprintf(
		"confidence: plan %v has confidence %v (below %v): review the forecast before merging",
		[input.plan.plan_id, input.plan.confidence, minimum],
	)
}
