// AWS region names: one rule for the config files, the REST settings, the
// gRPC identity, EC2 identity documents and the rendered teleport.yaml.

/** An AWS region name such as us-east-1 or us-gov-west-1. */
export const AWS_REGION_PATTERN = '^[a-z]{2}(-[a-z]+)+-\\d{1,2}$';
const awsRegionRe = new RegExp(AWS_REGION_PATTERN);

export const isAwsRegion = (value: string): boolean => awsRegionRe.test(value);
