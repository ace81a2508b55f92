# the alert rules and the Grafana dashboard that docs/ ships: promtool
# accepts the rules, the dashboard is Grafana JSON, and every metric either
# names is one that docs/metrics.md lists (and the expositions themselves
# are checked against that list in t/module/93-metrics.t and
# t/worker/w80-metrics.t)
use strict;
use warnings;
use Test::More;
use JSON::PP;

sub slurp {
    open my $fh, '<', $_[0] or die "$_[0]: $!";
    local $/;
    return scalar <$fh>;
}

my $doc = slurp('docs/metrics.md');
my %documented = map { $_ => 1 } $doc =~ /^\| `(wa_relay_\w+)`/mg;
cmp_ok scalar(keys %documented), '>=', 35,
    scalar(keys %documented) . ' metrics in docs/metrics.md';

my ($promtool) = grep { -x } map { "$_/promtool" } split /:/, $ENV{PATH};
ok $promtool, 'promtool is installed' or BAIL_OUT('make deps: prometheus');
my $rules = 'docs/prometheus/wa-relay.rules.yml';
my $out = `$promtool check rules $rules 2>&1`;
is $? >> 8, 0, "promtool check rules $rules" or diag $out;
like $out, qr/SUCCESS: \d+ rules found/, 'rules found';

my $g = JSON::PP->new->decode(slurp('docs/grafana/wa-relay.json'));
ok $g->{panels} && @{ $g->{panels} } >= 10,
    scalar(@{ $g->{panels} }) . ' panels in docs/grafana/wa-relay.json';
my @exprs = map { $_->{expr} } map { @{ $_->{targets} || [] } }
            @{ $g->{panels} };
cmp_ok scalar(@exprs), '>=', 10, scalar(@exprs) . ' queries';

# the metrics texts name that docs/metrics.md does not (a histogram's
# series end in _bucket, _sum, _count)
sub unknown {
    my %used;
    for my $text (@_) {
        for my $m ($text =~ /\b(wa_relay_\w+)/g) {
            $m =~ s/_(bucket|sum|count)$// unless $documented{$m};
            $used{$m} = 1;
        }
    }
    return grep { !$documented{$_} } sort keys %used;
}

is_deeply [ unknown(slurp($rules), @exprs) ], [],
    'the rules and the dashboard use only documented metrics';
is_deeply [ unknown('rate(wa_relay_no_such_thing_total[5m]) + '
                    . 'wa_relay_redis_up') ], [ 'wa_relay_no_such_thing_total' ],
    'a metric nobody exports would be caught';

done_testing;
