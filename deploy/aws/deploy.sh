#!/usr/bin/env bash
# Deploys sipflow's stacks of one environment with the AWS CLI, in order: network, data, services.
#
#   bash deploy/aws/deploy.sh dev        # parameters: deploy/aws/params/dev.json
#
# Before the first deploy: the app secret (AppSecretArn) and the two ECR repositories with the
# images of ImageTag pushed (deploy/build_images.sh --push REGISTRY); see README "Deploying on AWS".
set -euo pipefail
cd "$(dirname "$0")"
ENV=${1:?usage: deploy.sh dev|staging|prod}
PARAMS=params/$ENV.json
[ -f "$PARAMS" ] || { echo "deploy.sh: no $PARAMS" >&2; exit 2; }
for stack in network data services; do
  mapfile -t overrides < <(python3 params.py "$PARAMS" "$stack.yaml")
  aws cloudformation deploy --stack-name "sipflow-$ENV-$stack" --template-file "$stack.yaml" \
    --capabilities CAPABILITY_IAM --no-fail-on-empty-changeset \
    --parameter-overrides "${overrides[@]}"
done
aws cloudformation describe-stacks --stack-name "sipflow-$ENV-services" \
  --query "Stacks[0].Outputs" --output table
