# the C unit tests (Check), run as part of the prove suite
use strict;
use warnings;
use Test::More;

my $bin = $ENV{WA_UNIT} || 'build/unit_tests';
plan skip_all => "$bin not built (make unit)" unless -x $bin;

my $out = `CK_FORK=yes $bin 2>&1`;
is $? >> 8, 0, 'unit tests pass' or diag $out;
like $out, qr/100%: Checks: (\d+), Failures: 0, Errors: 0/, 'all checks ran';
my ($n) = $out =~ /Checks: (\d+)/;
cmp_ok $n // 0, '>=', 20, "$n checks";

done_testing;
