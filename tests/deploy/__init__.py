"""Offline proof of the AWS deployment: template.yaml through the SAM translator and cfn-lint."""
