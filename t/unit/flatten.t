# Flattening a change's value is linear in its keys: the instructions
# wa_normalize() executes, counted by callgrind, per key at 100k keys
# against per key at 1k (the unit test flatten_once, t/unit/test_normalize.c).
# Counted, not timed: the same on any machine, whatever its speed or load.
use strict;
use warnings;
use Test::More;
use File::Temp qw(tempdir);

my $bin = $ENV{WA_UNIT} || 'build/unit_tests';
plan skip_all => "$bin not built (make unit)" unless -x $bin;
plan skip_all => 'no valgrind (make deps installs it)'
    unless grep { -x "$_/valgrind" } split /:/, $ENV{PATH};
# make test-asan's build: valgrind cannot run AddressSanitizer's binaries
plan skip_all => "$bin is built with AddressSanitizer, which valgrind "
    . 'cannot run' if `ldd $bin 2>&1` =~ /libasan/;

my $dir = tempdir(CLEANUP => 1);

# instructions of one wa_normalize() of a value of n keys
sub instructions {
    my ($n) = @_;
    my $out = "$dir/callgrind.$n";
    my $log = `CK_RUN_CASE=complexity CK_FORK=no WA_FLATTEN_KEYS=$n \\
        valgrind --tool=callgrind --callgrind-out-file=$out \\
        --toggle-collect=wa_normalize $bin 2>&1`;
    is $? >> 8, 0, "$n keys: flatten_once passes under callgrind"
        or diag $log;
    like $log, qr/100%: Checks: 1, Failures: 0/, "$n keys: it ran";
    open my $fh, '<', $out or return 0;
    while (my $l = <$fh>) { return $1 if $l =~ /^totals:\s*(\d+)/ }
    return 0;
}

my ($small, $large) = map { instructions($_) } 1000, 100_000;
ok $small > 0 && $large > 0, "counted: $small and $large instructions";
my $ratio = ($large / 100_000) / (($small || 1) / 1000);
diag sprintf 'normalize: %.0f instructions per key at 1k keys, %.0f at '
    . '100k: ratio %.2f', $small / 1000, $large / 100_000, $ratio;
# quadratic work makes it about 100 at these sizes
cmp_ok $ratio, '<', 2, 'the instructions per key do not grow with the keys';

done_testing;
