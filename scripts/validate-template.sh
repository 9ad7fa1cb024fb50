#!/usr/bin/env bash
# Validates template.yaml offline (no AWS credentials, only a region), as CI does:
#   1. `sam validate` (the SAM CLI's own check; managed policies are named by full ARN, so no IAM call),
#   2. `sam validate --lint` (cfn-lint with its SAM support, on the SAM file),
#   3. the SAM translator's transform into plain CloudFormation, with EnableLlamaCpp false and true,
#   4. cfn-lint on each transformed template (the SAM file alone hides what the transform generates),
#      and on the nested stacks under infra/ (plain CloudFormation) when they exist.
# No cfn-lint rule is ignored. The tools live in their own venv, .tools/sam-venv (gitignored):
# aws-sam-translator pins pydantic to one minor version, which would downgrade the project's venv.
#   bash scripts/validate-template.sh            install the tools if needed, then validate
#   bash scripts/validate-template.sh --install  only install the tools
set -euo pipefail
cd "$(dirname "$0")/.."

SAM_CLI_VERSION="1.170.0"
SAM_TRANSLATOR_VERSION="1.115.0"   # has ResponseTransferMode on Api events (tests/deploy checks its output)
CFN_LINT_VERSION="1.58.0"
venv=".tools/sam-venv"
stamp="$venv/.tollgate-versions"
want="sam-cli=$SAM_CLI_VERSION translator=$SAM_TRANSLATOR_VERSION cfn-lint=$CFN_LINT_VERSION"

if [ ! -x "$venv/bin/sam" ] || [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  echo "installing SAM CLI $SAM_CLI_VERSION, aws-sam-translator $SAM_TRANSLATOR_VERSION, cfn-lint $CFN_LINT_VERSION into $venv"
  python3 -m venv "$venv"
  "$venv/bin/python" -m pip install --quiet --disable-pip-version-check \
    "aws-sam-cli==$SAM_CLI_VERSION" "aws-sam-translator==$SAM_TRANSLATOR_VERSION" "cfn-lint==$CFN_LINT_VERSION"
  echo "$want" > "$stamp"
fi
[ "${1:-}" = "--install" ] && exit 0

# A region and nothing else: no credentials, no profile, no instance metadata, no telemetry.
for name in $(env | sed -n 's/^\(AWS_[A-Za-z0-9_]*\)=.*/\1/p'); do unset "$name"; done
export AWS_DEFAULT_REGION=us-east-1 AWS_REGION=us-east-1 AWS_CONFIG_FILE=/dev/null \
  AWS_SHARED_CREDENTIALS_FILE=/dev/null AWS_EC2_METADATA_DISABLED=true SAM_CLI_TELEMETRY=0

quiet() { grep -v "Feature Toggle" || true; }  # the translator's harmless feature-flag chatter
"$venv/bin/sam" validate --template template.yaml --region us-east-1 2>&1 | quiet
"$venv/bin/sam" validate --lint --template template.yaml --region us-east-1 2>&1 | quiet

out="$(mktemp -d)"
trap 'rm -rf "$out"' EXIT
for enable in false true; do
  "$venv/bin/python" tests/deploy/sam_transform.py template.yaml "$out/transformed-llama-$enable.json" \
    "EnableLlamaCpp=$enable" 2>&1 | quiet
done
"$venv/bin/cfn-lint" --format parseable -- "$out"/transformed-llama-*.json
echo "cfn-lint: transformed template (EnableLlamaCpp false and true) clean"
shopt -s nullglob
nested=(infra/*.yaml)
if [ "${#nested[@]}" -gt 0 ]; then
  "$venv/bin/cfn-lint" --format parseable -- "${nested[@]}"
  echo "cfn-lint: ${nested[*]} clean"
fi
